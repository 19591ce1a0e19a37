"""The task registry: one line per task, `name: "module:Class"`, imported only when asked for."""

from __future__ import annotations

import importlib

from finetune_lab.errors import UsageError, did_you_mean

REGISTRY: dict[str, str] = {
    "ner": "tasks.ner:ConllNer",
    "sentiment": "tasks.sentiment:MovieReviewSentiment",
    "spam": "tasks.spam:SmsSpam",
    "intent": "tasks.intent:TrecIntent",
    "opinion": "tasks.opinion:TweetOpinion",
    "news-sentiment": "tasks.news_sentiment:NewsSentiment",
    "news-rating": "tasks.news_sentiment:NewsRating",
    "ner-zh": "tasks.ner_zh:MsraNer",
    "sentiment-zh": "tasks.sentiment_zh:ChineseReviewSentiment",
}


def available_tasks() -> list[str]:
    return sorted(REGISTRY)


def get_task_class(name: str) -> type:
    """The task class registered under `name`; an unknown name is a UsageError with suggestions."""
    if name not in REGISTRY:
        raise UsageError(
            f"unknown task '{name}'{did_you_mean(name, REGISTRY)}; available tasks: {', '.join(available_tasks())}"
        )
    module_name, class_name = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)
