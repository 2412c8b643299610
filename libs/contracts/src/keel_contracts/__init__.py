"""Keel's language: what crosses a process boundary, with no plumbing attached.

Every service, client and application speaks these types: the event envelope and payloads
(``events``), chat messages and the request context (``chat``), the topic catalog
(``topics``), the one error hierarchy (``errors``), canonical JSON (``canonical``) and the
marking of untrusted text (``untrusted``). The package depends on pydantic and the standard
library only, so anything may import it; an import-contract test keeps it that way.
"""
