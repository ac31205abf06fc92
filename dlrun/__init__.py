"""dlrun: a command-line experiment runner for Keras/TensorFlow driven by YAML specs."""

__version__ = "0.1.0"
