"""Data: tokenizers with control tokens, chat-template prompts, the toy arithmetic task,
prompt / hybrid-SFT file loaders, and SFT examples and batches.

Modules: `types` (records), `toy_tokenizer`, `tokenizer` + `control_tokens` (loading and the
add/map control-token modes), `chat_template` (prompts fitted to thinkless/adaptthink),
`toy_task` (generator and verifier), `loaders` (jsonl/parquet), `sft_examples` (Thinkless
stage-1 pairs, collation, the resumable batch iterator). Import from the modules directly.
"""
