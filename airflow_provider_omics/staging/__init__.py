"""The staged data, beneath the read set steps: the one gateway to staged sources (:mod:`.sources`: parse,
canonicalise, check against the allow-lists and the denied locations, fingerprint, pin), manifests
(:mod:`.manifests`), digests of staged FASTQ in the service's ETag algorithms (:mod:`.digests`) and reports
written next to a manifest (:mod:`.reports`)."""
