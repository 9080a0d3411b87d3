"""face-match: an encrypted face-embedding matcher.

A dense layer without bias whose 1,000 rows are the enrolled unit-norm
templates: the output is the cosine similarity of the (unit-norm) query
embedding with every enrolled person, and the prediction is the arg max.
The server matches without seeing the query, the scores or the result.

No face data is available offline, so the embeddings are SYNTHETIC (see
zoo.faces): 128-dimensional unit vectors, as FaceNet produces, for 1,000
identities drawn from an anisotropic Gaussian, with capture noise tuned so
that genuine pairs score about 0.58 and impostors 0.00 +- 0.14, the best
of 999 impostors about 0.39. Nothing is trained: enrolment is copying
templates into the weights.

    /usr/bin/python3 examples/face-match/train.py
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import zoo  # noqa: E402

NAME = "face-match"


def main():
    zoo.setup()
    templates, calib, queries, ids = zoo.faces()
    model = nn.Linear(templates.shape[1], len(templates), bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(templates))

    scores = queries @ templates.T
    own = scores[np.arange(len(ids)), ids]
    impostor = scores.copy()
    impostor[np.arange(len(ids)), ids] = np.nan
    best = np.nanmax(impostor, 1)
    print(f"  cosine similarity: genuine {own.mean():.3f} +- {own.std():.3f}, "
          f"impostor {np.nanmean(impostor):.3f} +- {np.nanstd(impostor):.3f}, "
          f"best impostor per query {best.mean():.3f} +- {best.std():.3f}; "
          f"smallest genuine margin {np.min(own - best):.3f}")
    print(f"  top-1 identification: {zoo.accuracy(model, queries, ids):.4f} on {len(ids)} queries")
    zoo.export(model, NAME, torch.from_numpy(queries[:1]))
    zoo.save_fixtures(NAME, queries, ids, calib, 128)


if __name__ == "__main__":
    main()
