"""Data: tokenizers with control tokens, chat-template prompts, the toy arithmetic task,
prompt / hybrid-SFT file loaders, SFT examples and batches, and pre-tokenized SFT shards.

Modules: `types` (records), `toy_tokenizer`, `tokenizer` + `control_tokens` (loading and the
add/map control-token modes), `chat_template` (prompts fitted to thinkless/adaptthink),
`toy_task` (generator and verifier), `loaders` (jsonl/parquet, streamed), `sft_examples`
(Thinkless stage-1 pairs, collation, the resumable batch iterator), `batch_order` (the batch
rule every SFT reader shares), `shards/` (pre-tokenized SFT shards: build, memory-mapped and
DALI readers; docs/DATA.md), `sft_source` (the SFT stage's iterator for the configured data).
Import from the modules directly.
"""
