"""The project: what every other wing stands on. Ground floor; imports no other wing.

- ``store`` — the project folder and its SQLite database (transactions, read-only opening, runs);
- ``migrations`` — the database's schema, one step per release that changed it;
- ``settings`` — the pipeline's settings as stored (inpainting model, masker, engine, device, dtype);
- ``device`` — the one place that resolves a device name and moves a model (``place``);
- ``jobs`` and ``progress`` — background jobs, progress callbacks and cancellation;
- ``errors`` — ``DDBError`` and its children, the errors a user sees.
"""
