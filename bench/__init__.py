"""The course's benchmark: what one request costs, layer by layer. See bench/README.md."""
