"""Planning an allocation (node-hours -> model, tokens, energy, CO2e) and tracking its burn."""
