"""The study's stages: the only code that writes the bundle, one module per stage, loaders in artifacts."""
