"""Participants and the records a DPO keeps: sites, datasets, policies, consent."""
