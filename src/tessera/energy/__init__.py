"""Energy measurement (NVML, CodeCarbon, RAPL) and the energy report."""
