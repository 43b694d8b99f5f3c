"""Hybrid SFT pairs: token ids, loss masks, collation and the resumable batch iterator."""

import itertools

import pytest
import torch

from megathink_fixtures.r1_tokenizer import build_r1_style_tokenizer_dir
from megathink.config import DataConfig, TokenizerConfig
from megathink.data.chat_template import encode_prompt
from megathink.data.sft_examples import (
    SFTBatchIterator,
    SFTExample,
    collate_sft,
    encode_sft_pair,
    prepare_sft_pairs,
)
from megathink.data.tokenizer import load_tokenizer
from megathink.data.toy_task import build_toy_datasets, record_for

CFG = TokenizerConfig()


@pytest.fixture(scope="module")
def bundle():
    return load_tokenizer(CFG)


def test_pair_layout_and_masks(bundle):
    record = record_for(47, 38, 2)
    think, short = encode_sft_pair(record, bundle, CFG)
    prompt = encode_prompt(bundle, record.problem, CFG)
    tok = bundle.tokenizer
    assert (think.mode, short.mode, think.level) == ("think", "short", 2)
    forms = ((think, bundle.control.think, record.long), (short, bundle.control.short, record.short))
    for example, control, text in forms:
        assert example.input_ids[: len(prompt)] == prompt
        response = example.input_ids[len(prompt) :]
        assert response[0] == control and response[-1] == bundle.eos_id
        assert tok.decode(response[1:-1]) == text
        assert example.loss_mask == [0] * len(prompt) + [1] * len(response)
    assert think.input_ids.count(bundle.control.end_think) == 1


def test_pair_on_r1_tokenizer_has_one_bos(tmp_path):
    cfg = TokenizerConfig(kind="pretrained", path=build_r1_style_tokenizer_dir(str(tmp_path)))
    r1 = load_tokenizer(cfg)
    think, short = encode_sft_pair(record_for(3, 4, 1), r1, cfg)
    assert think.input_ids.count(r1.tokenizer.bos_token_id) == 1
    first_target = think.loss_mask.index(1)
    assert think.input_ids[first_target] == r1.control.think
    assert short.input_ids[short.loss_mask.index(1)] == r1.control.short


def test_adaptthink_warmup_trains_thinking_and_only_the_answer_after_a_forced_end_think(bundle):
    """template=adaptthink: the prompt ends with <think>\\n; the thinking example trains the whole
    response (opener prefix included), the NoThinking example trains the answer but not `</think>`."""
    cfg = TokenizerConfig(template="adaptthink")
    record = record_for(47, 38, 2)
    thinking, nothinking = encode_sft_pair(record, bundle, cfg, long_prefix="Alright")
    prompt = encode_prompt(bundle, record.problem, cfg)
    assert bundle.tokenizer.decode(prompt).endswith("<think>\n")
    tok = bundle.tokenizer
    assert (thinking.mode, nothinking.mode) == ("think", "short")
    response = thinking.input_ids[len(prompt) :]
    assert tok.decode(response[:-1]) == "Alright" + record.long and response[-1] == bundle.eos_id
    assert thinking.loss_mask == [0] * len(prompt) + [1] * len(response)
    response = nothinking.input_ids[len(prompt) :]
    assert response[0] == bundle.control.end_think and tok.decode(response[1:-1]) == record.short
    assert nothinking.loss_mask == [0] * (len(prompt) + 1) + [1] * (len(response) - 1)
    (only,) = encode_sft_pair(record, bundle, cfg, nothinking_answers=False)
    assert only.input_ids == prompt + tok.encode(record.long, add_special_tokens=False) + [bundle.eos_id]


def test_thinkless_pair_takes_the_long_prefix(bundle):
    think, _ = encode_sft_pair(record_for(1, 2, 1), bundle, CFG, long_prefix="Alright")
    prompt = encode_prompt(bundle, "1+2=", CFG)
    assert bundle.tokenizer.decode(think.input_ids[len(prompt) + 1 : -1]) == "Alright" + record_for(1, 2, 1).long


def test_adaptthink_single_examples_batch_one_sequence_per_question(bundle):
    cfg = TokenizerConfig(template="adaptthink")
    train, _ = build_toy_datasets(DataConfig(toy_train_size=20, toy_eval_per_level=0))
    pairs, _ = prepare_sft_pairs(train, bundle, cfg, max_seq_len=256, nothinking_answers=False)
    batch = next(SFTBatchIterator(pairs, 4, seed=0, pad_id=bundle.pad_id))
    assert batch.input_ids.shape[0] == 4


def test_prepare_drops_long_pairs(bundle):
    records = [record_for(3, 4, 1), record_for(34567, 12345, 5)]
    long_len = len(encode_sft_pair(records[1], bundle, CFG)[0])
    pairs, dropped = prepare_sft_pairs(records, bundle, CFG, max_seq_len=long_len - 1)
    assert dropped == 1 and len(pairs) == 1 and pairs[0][0].level == 1
    pairs, dropped = prepare_sft_pairs(records, bundle, CFG, max_seq_len=long_len)
    assert dropped == 0 and len(pairs) == 2


def test_collate_right_pads_and_keeps_target_convention():
    examples = [
        SFTExample(input_ids=[5, 6, 7, 8], loss_mask=[0, 0, 1, 1], mode="think", level=1),
        SFTExample(input_ids=[5, 9], loss_mask=[0, 1], mode="short", level=1),
    ]
    batch = collate_sft(examples, pad_id=0)
    assert batch.input_ids.tolist() == [[5, 6, 7, 8], [5, 9, 0, 0]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert batch.loss_mask.dtype == torch.float32
    assert batch.loss_mask.tolist() == [[0, 0, 1, 1], [0, 1, 0, 0]]
    assert batch.num_target_tokens == 3
    with pytest.raises(ValueError):
        collate_sft([], pad_id=0)


def toy_pairs(bundle, size=20):
    train, _ = build_toy_datasets(DataConfig(toy_train_size=size, toy_eval_per_level=2, levels=[1, 2, 3]))
    pairs, _ = prepare_sft_pairs(train, bundle, CFG, max_seq_len=256)
    return pairs


def test_iterator_puts_both_forms_together_and_covers_an_epoch(bundle):
    pairs = toy_pairs(bundle)
    iterator = SFTBatchIterator(pairs, questions_per_batch=4, seed=3, pad_id=bundle.pad_id)
    assert iterator.batches_per_epoch == 5
    seen = []
    for batch in itertools.islice(iterator, 5):
        assert batch.input_ids.shape[0] == 8
        firsts = [row[mask.bool()][0].item() for row, mask in zip(batch.input_ids, batch.loss_mask)]
        assert firsts == [bundle.control.think, bundle.control.short] * 4
        prompts = [tuple(row[: int(mask.argmax())].tolist()) for row, mask in zip(batch.input_ids, batch.loss_mask)]
        assert prompts[0::2] == prompts[1::2]  # think and short of the same question side by side
        seen += prompts[0::2]
    assert sorted(seen) == sorted(tuple(p[0].input_ids[: p[0].loss_mask.index(1)]) for p in pairs)
    assert iterator.state_dict() == {"epoch": 0, "position": 20}
    next(iterator)
    assert iterator.state_dict() == {"epoch": 1, "position": 4}


def test_iterator_is_deterministic_and_resumes(bundle):
    pairs = toy_pairs(bundle, size=18)  # 4 full batches of 4, 2 questions skipped per epoch

    def run(count, seed=0):
        iterator = SFTBatchIterator(pairs, 4, seed=seed, pad_id=bundle.pad_id)
        return [b.input_ids.tolist() for b in itertools.islice(iterator, count)]

    reference = run(11)
    assert reference == run(11)
    assert reference != run(11, seed=1)
    assert reference[:4] != reference[4:8]  # a fresh order every epoch

    first = SFTBatchIterator(pairs, 4, seed=0, pad_id=bundle.pad_id)
    head = [b.input_ids.tolist() for b in itertools.islice(first, 6)]
    state = first.state_dict()
    resumed = SFTBatchIterator(pairs, 4, seed=0, pad_id=bundle.pad_id)
    resumed.load_state_dict(state)
    tail = [b.input_ids.tolist() for b in itertools.islice(resumed, 5)]
    assert head + tail == reference


def test_iterator_needs_enough_questions(bundle):
    pairs = toy_pairs(bundle, size=3)
    with pytest.raises(ValueError, match="questions per batch"):
        SFTBatchIterator(pairs, questions_per_batch=4, seed=0, pad_id=0)
