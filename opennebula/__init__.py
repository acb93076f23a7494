"""OpenNebula adapter: the pyone client, the provisioner, placement checks, the oned stand-in."""
