"""The mapping store: links between cases and tickets, and the bookkeeping that makes sync safe."""
