"""The quality estimate of one segmentation: shape model, features, Estimated Dice and Node Error Radius."""
