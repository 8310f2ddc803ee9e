"""domainssl.data."""
