"""Write paths of the training app, one module per use case family.

``runs`` (runs, DPIAs, rounds), ``gate`` (the GDPR round gate), ``flower`` (tickets,
update records), later ``rounds`` (the state machine). Import from the submodule.
"""
