"""domainssl.methods."""
