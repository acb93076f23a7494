"""A local, protocol-faithful stand-in for oned: XML-RPC, VM state machine, scheduler, faults."""
