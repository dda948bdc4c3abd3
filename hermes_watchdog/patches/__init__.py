"""Runtime fixes for installed Hermes versions, loaded into the gateway's own interpreter."""
