"""General distillation, shared by the targets: a narrow encoder distilled from the pre-trained base model
on a general corpus, before any task data (TinyBERT's first stage). Its own group, materialised by hand: no
labelled set or query log reaches it, so the nightly refresh never wakes it."""
