"""GVRs whose moves leave the radiograph's positioning where it is: does that make them show the disease? (issue 15)

Both predictors respond to how the patient stands (``fidelity/summary.json`` ``positioning``), and the
GVRs that miss the cardiothoracic-ratio target move the body outline and the ribs rather than the heart
(benchmarks/RESULTS.md, session 6). This probe holds positioning fixed: for each code it finds the
directions in which the code moves when its decoded picture is rotated, shifted (both ways) or scaled a
little (central differences of the encoder's codes, :data:`MOVES`), and removes their span from every
step of the pattern move. The study is copied to OUT and the copy's explain stage is run with that move
(the study itself is never written: its GVRs would be stored under the usual stage key); measure the
copy with ``gvr fidelity`` as usual. It needs nothing from the phantom, so it would apply to real radiographs;
it is a probe, not an option, because it hides any reliance on positioning by construction.

Usage::

    python benchmarks/probe_hold_positioning.py STUDY OUT [--config default]
    .venv/bin/gvr fidelity --bundle OUT --config ...
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data_schema import Bundle  # noqa: E402
from modelling.config import load_config  # noqa: E402
from modelling.explain import gvr  # noqa: E402
from modelling.nets.augment import transform  # noqa: E402
from modelling.nets.training import decode, encode  # noqa: E402
from modelling.stages import explain  # noqa: E402
from modelling.stages.artifacts import load_encoder  # noqa: E402

#: Small moves of the decoded picture: rotation (degrees), horizontal and vertical shift (share of the
#: width), scale; each is taken both ways.
MOVES = ((2.0, 0.0, 0.0, 1.0), (0.0, 0.02, 0.0, 1.0), (0.0, 0.0, 0.02, 1.0), (0.0, 0.0, 0.0, 1.02))


def positioning_directions(encoder, decoder, codes: np.ndarray) -> np.ndarray:
    """An orthonormal basis (n, latent_dim, len(MOVES)) of each code's positioning directions."""
    pictures = decode(decoder, codes)
    columns = []
    for m in MOVES:
        plus = np.tile(np.asarray(m, float), (len(codes), 1))
        minus = np.column_stack([-plus[:, :3], 2.0 - plus[:, 3]])
        columns.append(encode(encoder, transform(pictures, plus)) - encode(encoder, transform(pictures, minus)))
    basis, _ = np.linalg.qr(np.stack(columns, axis=2).astype(np.float64))
    return basis


@contextlib.contextmanager
def positioning_held(encoder):
    """Within the block, the explain stage's pattern moves step outside each code's positioning span."""
    held = {}

    class Held(gvr._PatternSteps):
        @torch.no_grad()
        def step(self) -> None:
            before = self.z.detach().clone()
            super().step()
            basis = held["basis"].to(self.z.device)
            delta = self.z - before
            delta -= torch.einsum("nik,nk->ni", basis, torch.einsum("nik,ni->nk", basis, delta))
            self.z.copy_(before + delta)

    def move(start, decoder, *args, **kwargs):
        held["basis"] = torch.as_tensor(positioning_directions(encoder, decoder, start), dtype=torch.float32)
        return plain_move(start, decoder, *args, **kwargs)

    plain_steps, plain_move = gvr._PatternSteps, explain.move
    gvr._PatternSteps, explain.move = Held, move
    try:
        yield
    finally:
        gvr._PatternSteps, explain.move = plain_steps, plain_move


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study")
    parser.add_argument("out", help="a new folder for the copy that is explained (must not exist)")
    parser.add_argument("--config", default="default")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    if config.gvr.move != "pattern":
        raise SystemExit("the probe holds positioning in pattern moves only (gvr.move: pattern)")
    out = Path(args.out)
    if out.exists():
        raise SystemExit(f"{out} exists; give a new folder for the copy")
    Bundle(args.study, create=False)  # a study, before anything is copied
    shutil.copytree(args.study, out, ignore=shutil.ignore_patterns(".gvr-lock", "work"))
    with positioning_held(load_encoder(Bundle(out, create=False), config)):
        explain.build_explanations(config, out, force=True)
    print(f"{out}: a copy of {args.study} explained with positioning held; now run gvr fidelity on it")


if __name__ == "__main__":
    main()
