"""The networks (decoder, critic, encoder, predictors), their training, and checkpoints."""
