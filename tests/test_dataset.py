import pytest

from tests.videos import write_image
from workers.errors import BadLabels
from workers.training.dataset import load_csv, load_folders, positive_class


def make_csv_set(tmp_path, rows, images):
    img_dir = tmp_path / "images"
    img_dir.mkdir()
    for name in images:
        write_image(img_dir / name, (100, 100, 100))
    csv = tmp_path / "labels.csv"
    csv.write_text("Image_ID,Class\n" + "\n".join(f"{n},{c}" for n, c in rows) + "\n")
    return csv, img_dir


def test_csv_missing_images_and_unlabelled_are_reported_and_skipped(tmp_path):
    rows = [(f"frame{i}.jpg", i % 2) for i in range(10)] + [("frame99.jpg", 1)]
    csv, img = make_csv_set(tmp_path, rows, [f"frame{i}.jpg" for i in range(12)])
    data = load_csv(csv, img, block=3)
    assert len(data.examples) == 10
    assert data.counts() == {"0": 5, "1": 5}
    assert any("frame99.jpg" in p and "missing" in p for p in data.problems)
    assert any(p.startswith("2 images") and "no label" in p for p in data.problems)
    assert data.skipped == {"bad rows": 0, "missing": 1, "unlabelled": 2}  # images and rows, not problem lines
    # groups are blocks of 3 consecutive frames in numeric order
    assert [e.group for e in data.examples] == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]
    assert [e.path.name for e in data.examples][:3] == ["frame0.jpg", "frame1.jpg", "frame2.jpg"]


def test_csv_bad_header_and_single_class(tmp_path):
    csv, img = make_csv_set(tmp_path, [("a.jpg", 1), ("b.jpg", 1)], ["a.jpg", "b.jpg"])
    with pytest.raises(BadLabels, match="two classes"):
        load_csv(csv, img)
    csv.write_text("name,label\na.jpg,1\n")
    with pytest.raises(BadLabels, match="expected columns Image_ID,Class"):
        load_csv(csv, img)
    with pytest.raises(BadLabels, match="labels file not found"):
        load_csv(tmp_path / "nope.csv", img)


def test_path_like_ids_are_refused(tmp_path):
    csv, img = make_csv_set(tmp_path, [("a.jpg", 0), ("b.jpg", 1), ("../x.jpg", 1)], ["a.jpg", "b.jpg"])
    data = load_csv(csv, img)
    assert len(data.examples) == 2
    assert any("not a plain file name" in p for p in data.problems)


def test_folders_layout(tmp_path):
    for cls, colour in (("other", (0, 0, 200)), ("trump", (200, 0, 0))):
        (tmp_path / cls).mkdir()
        for i in range(4):
            write_image(tmp_path / cls / f"{i}.jpg", colour, seed=i)
    data = load_folders(tmp_path, block=2)
    assert data.class_names == ["other", "trump"]
    assert positive_class(data.class_names, "trump") == 1
    groups = {e.group for e in data.examples}
    assert len(groups) == 4  # two per class, never shared across classes
    with pytest.raises(BadLabels, match="no class sub-folders"):
        load_folders(tmp_path / "other")


def test_positive_class_needs_to_be_clear():
    assert positive_class(["0", "1"], "x") == 1
    assert positive_class(["cat", "dog"], "x", requested="cat") == 0
    with pytest.raises(BadLabels, match="--positive-class"):
        positive_class(["cat", "dog"], "x")


def test_seed_csv_holes_are_reported(seed_dir):
    data = load_csv(seed_dir / "mapping_trump.csv", seed_dir / "images")
    assert len(data.examples) == 717
    missing = [p for p in data.problems if "missing" in p]
    assert len(missing) == 2 and "frame576.jpg" in missing[0] + missing[1]
    assert any("have no label" in p for p in data.problems)
