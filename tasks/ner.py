"""English named-entity recognition: CoNLL-2003 (PER, ORG, LOC, MISC), entity-level seqeval F1."""

from __future__ import annotations

from finetune_lab.readers import DataReport, read_conll
from finetune_lab.task import (
    TokenClassificationTask,
    align_labels_to_words,
    entity_level_metrics,
    package_file,
)


class ConllNer(TokenClassificationTask):
    name = "ner"
    description = "English NER, CoNLL-2003 (embedded copy; Hub: --dataset_name eriktks/conll2003)"
    label_names = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC")
    defaults = {
        # The small uncased MiniLM default wants a higher rate than BERT-base's usual 2e-5..5e-5.
        "learning_rate": 1e-4,
        "max_seq_length": 128,
        "metric_for_best_model": "f1",
    }

    def load_embedded(self, report: DataReport) -> dict[str, list[dict]]:
        folder = package_file("neuroner", "data/conll2003/en")
        report.source = f"embedded CoNLL-2003 ({folder})"
        files = {"train": "train.txt", "validation": "valid.txt", "test": "test.txt"}
        return {split: read_conll(folder / file, self.label_names) for split, file in files.items()}

    def preprocess(self, batch, tokenizer, data_args):
        return align_labels_to_words(
            batch, tokenizer, self.label2id, data_args.max_seq_length, data_args.label_all_tokens
        )

    def compute_metrics(self, eval_pred):
        return entity_level_metrics(eval_pred, self.label_names)
