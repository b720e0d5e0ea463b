"""Classification by folder: `root/cat/x.jpg` carries a 'tag' shape labelled `cat`.

Like torchvision's ImageFolder, the label is the first folder under the load root, so
`root/cat/siamese/x.jpg` is a `cat` too; images directly in the root get no tag.
"""

from __future__ import annotations

from pgsearch.loader.annotations import AnnotationSet, FileIndex, ShapeSpec


def parse_folders(index: FileIndex) -> AnnotationSet:
    shapes: dict[str, list[ShapeSpec]] = {}
    labels: list[str] = []
    for filename in index.filenames:
        if "/" not in filename:
            continue
        label = filename.split("/", 1)[0].strip()
        if not label:
            continue
        shapes[filename] = [ShapeSpec(label, "tag")]
        if label not in labels:
            labels.append(label)
    return AnnotationSet("folders", shapes, sorted(labels))
