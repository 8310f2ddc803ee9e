"""domainssl.models."""
