"""HostCNN: three conv blocks (conv3x3, BN, ReLU, maxpool), global average pool, linear classifier."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from torch import Tensor, nn

from esper.kasmina.protocol import Grafts, InjectionPoint


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class HostCNN(nn.Module):
    """The CNN host (~95k parameters at widths 32/64/128); one injection point after block 2."""

    topology = "cnn"

    def __init__(
        self, widths: Sequence[int] = (32, 64, 128), n_classes: int = 10, in_channels: int = 3
    ):
        super().__init__()
        if len(widths) != 3:
            raise ValueError(f"HostCNN has three blocks; got widths {list(widths)}")
        channels = [in_channels, *widths]
        self.blocks = nn.ModuleList(_block(a, b) for a, b in pairwise(channels))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(widths[-1], n_classes)
        self._points = {"block2_post": InjectionPoint(1, "post_block", widths[1])}
        self.grafts = Grafts(self._points)

    @property
    def injection_points(self) -> dict[str, InjectionPoint]:
        """`block2_post`: after the second block."""
        return self._points

    def forward_through_layer(self, x: Tensor, last_layer_idx: int) -> Tensor:
        """Blocks 0..last_layer_idx."""
        for i in range(last_layer_idx + 1):
            x = self.grafts.after(self.blocks[i](x), i)
        return x

    def forward_from_layer(self, h: Tensor, first_layer_idx: int) -> Tensor:
        """Blocks first_layer_idx..2, then pool and classify."""
        for i in range(first_layer_idx, len(self.blocks)):
            h = self.grafts.after(self.blocks[i](h), i)
        return self.classifier(self.pool(h).flatten(1))

    def forward(self, x: Tensor) -> Tensor:
        """Logits of shape (batch, n_classes)."""
        return self.forward_from_layer(x, 0)

    def graft(self, point_id: str, module: nn.Module) -> None:
        """Fossilise `module` into the host at `point_id`."""
        self.grafts.add(point_id, module)
