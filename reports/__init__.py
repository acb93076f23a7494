"""Reports for DPOs and legal teams: signed PDF audit reports, evidence bundles, Art. 30."""
