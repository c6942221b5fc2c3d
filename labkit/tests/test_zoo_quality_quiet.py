"""Zoo training and card scoring pass an attention mask, so transformers does not warn about padding."""

import subprocess
import sys

WARNING = "We strongly recommend passing in an `attention_mask`"

# Inputs that start or end with the pad id (= EOS here): training rows, right-padded answers, windows.
SCRIPT = """
import sys
import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from labkit.zoo import quality
from labkit.zoo.training import weighted_loss

model = AutoModelForCausalLM.from_pretrained(sys.argv[1], attn_implementation="eager").eval()
tok = AutoTokenizer.from_pretrained(sys.argv[1])
pad = tok.pad_token_id
if sys.argv[2] == "build":
    ids = torch.tensor([[pad, 5, 6, 7, pad], [5, 6, pad, 8, pad]])
    weighted_loss(model.train(), ids, torch.ones(ids.shape)).backward()
    model.eval()
    quality.continuation_logprobs(model, tok, "the cat sat", [" on", " on the mat"])
    quality.perplexity(model, np.array([pad, 5, 6, 7, 8, pad] * 4), window=6)
else:  # control: the same padded batch without a mask
    with torch.no_grad():
        model(input_ids=torch.tensor([[5, 6, 7, pad], [5, 6, pad, pad]]))
"""


def _stderr(model_dir, mode: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(model_dir), mode], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_zoo_training_and_scoring_do_not_trigger_the_padding_warning(zoo_test_model):
    model_dir = zoo_test_model("tiny-gpt2")
    assert WARNING in _stderr(model_dir, "control")  # the warning exists and is seen here
    assert WARNING not in _stderr(model_dir, "build")
