# finetune-lab (appended to .venv/bin/activate by `make setup`; @ROOT@ = the checkout):
# in the activated venv, a plain `accelerate launch ...` uses the project's accelerate_config.yaml
# (as `make <task>` does) instead of accelerate's defaults and their wall of warnings. Your own
# `--config_file`, `--cpu`, or a config written by `accelerate config` always wins; outside this venv
# (after `deactivate`) nothing changes; FINETUNE_LAB_PLAIN_ACCELERATE=1 turns it off.
accelerate () {
    if [ "${VIRTUAL_ENV:-}" = "@ROOT@/.venv" ] && [ "${1:-}" = launch ] && [ -z "${FINETUNE_LAB_PLAIN_ACCELERATE:-}" ] \
        && [ ! -f "${HF_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/huggingface}/accelerate/default_config.yaml" ]; then
        case " $* " in
            *" --config_file"* | *" --cpu "*) ;;
            *) shift; command accelerate launch --config_file "@ROOT@/accelerate_config.yaml" "$@"; return ;;
        esac
    fi
    command accelerate "$@"
}
