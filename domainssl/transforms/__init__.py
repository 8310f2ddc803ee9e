"""domainssl.transforms."""
