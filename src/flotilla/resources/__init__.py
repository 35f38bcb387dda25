"""The resource model: kinds, metadata, validation and label selectors."""
