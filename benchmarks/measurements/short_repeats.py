"""L18H6 induction score by segment length and token kind: python benchmarks/measurements/short_repeats.py."""
import torch, random
from icltest.session import Session
from icltest.models.loading import ModelSource
from icltest.scores import patterns
s = Session(); L = s.model(ModelSource(alias="smollm2-135m")); tok = L.tokenizer
vocab = s.vocab(L).allowed.tolist()
def score(ids, layer=18, head=6):
    t = torch.tensor([ids]); valid = torch.ones_like(t, dtype=torch.bool); valid[:, 0] = False
    with torch.inference_mode():
        out = L.model(input_ids=t, output_attentions=True)
    tg, qm = patterns.induction_targets(t, valid)
    return float(patterns.pattern_score(out.attentions[layer][:, head:head+1], tg, qm, per_sequence=True)[0, 0])
rng = random.Random(0)
punct = list(range(17, 17 + 60))  # low ids: single ASCII punctuation/byte tokens
words = [i for i in vocab if i > 2000]
for name, pool in (("punct(ids 17-76)", punct), ("random vocab > 2000", words)):
    for seg in (4, 8, 16, 32):
        vals = []
        for _ in range(8):
            segment = rng.sample(pool, seg)
            vals.append(score([1] + segment * 2))
        print(f"{name:22s} segment {seg:2d}: mean {sum(vals)/len(vals):.3f} min {min(vals):.3f}", flush=True)
print("decoded punct sample:", repr(tok.decode(punct[:20])))
