"""PSA (professional services automation) providers: the interface in `base`, one module per provider."""
