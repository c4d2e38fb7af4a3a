"""Data: the images a project holds. Imports ``project``.

- ``datasets`` — dataset import and validation (Waterbirds, CelebA and folder layouts), groups;
- ``imaging`` — the one view of an image and a mask (RGB uint8 at the edges, the classifier's transform);
- ``thumbnails`` — the small copies the review gallery shows.
"""
