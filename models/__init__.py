"""Neural networks: Keras definitions, a registry of versioned weights, training, evaluation."""
