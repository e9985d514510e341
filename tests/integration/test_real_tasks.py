"""Answer tokens, first-token collisions and BOS on the real SmolLM2 and Gemma 3 tokenizers (BPE).

The word-level test tokenizer gives every answer one token, so it cannot show what a real
tokenizer does: " Doha" and " Dakar" start with the same piece on SmolLM2, and 14 of 84
english_french answers share a first token with another answer there.
"""
from __future__ import annotations

import math

import pytest
import torch

from icltest.probes.books import build_book_prompts
from icltest.probes.tasks import build_icl_prompts, load_task


@pytest.mark.slow
def test_first_token_collisions_on_smollm2(real_model) -> None:
    from icltest.probes.tasks import colliding_answers

    tok = real_model("smollm2-135m").tokenizer
    capitals = colliding_answers(tok, [p.output for p in load_task("country_capital").pairs])
    assert capitals == frozenset({"Dakar", "Doha"})
    french = colliding_answers(tok, [p.output for p in load_task("english_french").pairs])
    assert len(french) == 14
    assert {"chanson", "chapeau", "chien", "loup", "lune", "école", "église", "étoile"} <= french
    for name in ("antonym", "capitalize", "present_past", "singular_plural"):
        assert colliding_answers(tok, [p.output for p in load_task(name).pairs]) == frozenset()


@pytest.mark.slow
def test_colliding_answers_carry_their_whole_answer_in_context(real_model) -> None:
    tok = real_model("smollm2-135m").tokenizer
    batch = build_icl_prompts("english_french", tok, shots=3, n=80, seed=0, split="all")
    assert batch.params["full_answer_items"] == sum(batch.full) > 0
    for prompt, answer, tokens, full in zip(batch.prompts, batch.answers, batch.answer_tokens, batch.full):
        assert tok.decode(tokens) == " " + answer  # every token of the answer, as it follows the prompt
        whole = tok(prompt + " " + answer, add_special_tokens=False)["input_ids"]
        assert whole[-len(tokens):] == tokens
        if answer in ("chien", "chapeau", "chanson"):
            assert full and len(tokens) > 1


@pytest.mark.slow
def test_bos_is_the_same_for_probes_and_prompts_on_both_models(real_model) -> None:
    from icltest.probes import vocab_from_tokenizer

    for alias, bos in (("smollm2-135m", 1), ("gemma3-270m", 2)):
        tok = real_model(alias).tokenizer
        assert vocab_from_tokenizer(tok).bos_id == bos  # what random-token probes prepend (bos: auto)
        for batch in (build_icl_prompts("antonym", tok, shots=2, n=4, seed=0),
                      build_book_prompts("open_book", tok, n=4, seed=0, shots=1)):
            assert batch.params["bos"] == bos
            for ids in batch.input_ids:
                assert ids[0] == bos and ids[1] != bos  # exactly once: Gemma's tokenizer adds it itself


@pytest.mark.slow
def test_full_answer_scoring_on_smollm2_matches_teacher_forcing_by_hand(real_model) -> None:
    from icltest.runs.run import Run
    from icltest.schema.spec import MetricSpec
    from icltest.session import Session

    loaded = real_model("smollm2-135m")
    for name in ("accuracy", "answer_prob"):
        run = Run(Session(), loaded, MetricSpec(name=name, task="english_french", shots=3, n=10, seed=1))
        assert any(run.inputs.full)
        expected = []
        for prompt, answer, full in zip(run.inputs.prompts, run.inputs.answers, run.inputs.full):
            ids = [1] + loaded.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            target = loaded.tokenizer(prompt + " " + answer, add_special_tokens=False)["input_ids"][len(ids) - 1:]
            target = target if full else target[:1]
            with torch.inference_mode():
                logits = loaded.model(input_ids=torch.tensor([ids + target[:-1]])).logits[0].float()
            steps = torch.softmax(logits[-len(target):], -1)
            if name == "accuracy":
                expected.append(float(all(int(s.argmax()) == t for s, t in zip(steps, target))))
            else:
                expected.append(math.prod(float(s[t]) for s, t in zip(steps, target)))
        assert run.value() == pytest.approx(sum(expected) / len(expected), abs=2e-4)
