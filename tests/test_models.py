import pickle

import pytest
import torch

from ddb_core.project.errors import ModelError, WeightsUnavailableError
from ddb_core.classifiers.models import build_classifier, imagenet_weights_file, load_classifier, save_checkpoint


def test_builder_gives_the_requested_number_of_classes():
    model = build_classifier("resnet18", 3)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 3)


def test_pretrained_offline_names_the_weights_file_and_how_to_provide_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    url, cached = imagenet_weights_file("resnet50")
    with pytest.raises(WeightsUnavailableError) as err:
        build_classifier("resnet50", 2, pretrained=True)
    msg = str(err.value)
    assert cached.name in msg and str(cached) in msg and "--pretrained-weights" in msg


def test_pretrained_from_a_local_weights_file(tmp_path):
    imagenet_like = build_classifier("resnet18", 1000)
    path = tmp_path / "resnet18-local.pth"
    torch.save(imagenet_like.state_dict(), path)
    model = build_classifier("resnet18", 2, pretrained=True, weights_path=str(path))
    assert torch.equal(model.conv1.weight, imagenet_like.conv1.weight)
    assert model.fc.out_features == 2


def test_project_checkpoint_roundtrip(tmp_path):
    model = build_classifier("resnet18", 2)
    save_checkpoint(model, tmp_path / "m.pt", arch="resnet18", num_classes=2, image_size=32)
    loaded, arch, n = load_classifier(tmp_path / "m.pt")
    assert (arch, n) == ("resnet18", 2)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))


def test_bare_state_dict_with_dataparallel_prefix(tmp_path):
    model = build_classifier("resnet18", 2)
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "user.pth")
    with pytest.raises(ModelError, match="does not record its architecture"):
        load_classifier(tmp_path / "user.pth")
    loaded, _, _ = load_classifier(tmp_path / "user.pth", arch="resnet18", num_classes=2)
    assert torch.equal(loaded.fc.weight, model.fc.weight)


def test_wrong_class_count_and_wrong_architecture_are_clear_errors(tmp_path):
    torch.save(build_classifier("resnet18", 5).state_dict(), tmp_path / "five.pth")
    with pytest.raises(ModelError, match="has 5 output classes, but the project has 2"):
        load_classifier(tmp_path / "five.pth", "resnet18", 2)
    torch.save(build_classifier("resnet18", 2).state_dict(), tmp_path / "r18.pth")
    with pytest.raises(ModelError, match="does not match architecture resnet50"):
        load_classifier(tmp_path / "r18.pth", "resnet50", 2)


class Payload:
    """An arbitrary object: weights_only loading must refuse to unpickle it."""


def test_non_weights_pickles_are_refused(tmp_path):
    (tmp_path / "evil.pt").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(ModelError, match="weights_only=True"):
        load_classifier(tmp_path / "evil.pt", "resnet18", 2)
    with pytest.raises(ModelError, match="does not exist"):
        load_classifier(tmp_path / "missing.pt", "resnet18", 2)


def test_decoded_images_are_reused_until_a_file_changes(tmp_path):
    import os

    import numpy as np
    from PIL import Image

    from ddb_core.data.imaging import ImageSet

    paths = []
    for k in range(3):
        paths.append(tmp_path / f"{k}.png")
        Image.fromarray(np.full((8, 8, 3), 10 * k, np.uint8)).save(paths[-1])
    first = ImageSet(paths, 8)
    again = ImageSet(paths, 8)
    assert again._data is first._data  # the same decoded pixels, not decoded twice
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(paths[1])
    st = os.stat(paths[1])
    os.utime(paths[1], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a later write, even within the clock's tick
    changed = ImageSet(paths, 8)
    assert changed._data is not first._data
    assert int(changed[1][0, 0, 0]) == 200 and int(changed[2][0, 0, 0]) == 20
    assert int(ImageSet(paths, 4)[1][0, 0, 0]) == 200  # another size is another entry
