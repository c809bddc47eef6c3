"""Open-weights export and the release folder: model card and EU AI Act documents."""
