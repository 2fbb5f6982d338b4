"""Print the agreement harness: every method that pytorch-grad-cam or captum also implements, same
model / layer / class / images, Pearson r of the normalised maps (the tests assert min r > 0.99)."""
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers import phantom_images, textured_densenet  # noqa: E402

from peers import peer_agreement  # noqa: E402

pd.set_option("display.width", 200)
table = peer_agreement(textured_densenet(), phantom_images(4), target=1)
print(table.to_string(index=False, float_format=lambda v: f"{v:.5f}"))
