"""domainssl.transfer."""
