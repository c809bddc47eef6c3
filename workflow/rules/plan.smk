# Calibration for `tessera plan`: a few training steps of each shape on one GPU of the site (or the CPU
# of a laptop), writing tokens/s, MFU and watts per GPU to plan/calibration.json. Not part of `all`:
# run it on purpose, `snakemake calibrate` (with the site's profile), then `tessera plan`. docs/plan.md.


rule calibrate:
    output:
        result=str(LAYOUT.calibration),
        energy=energy_log("calibrate"),
    log:
        log_file("calibrate"),
    benchmark:
        benchmark_file("calibrate")
    threads: 2
    resources:
        runtime=30,
        mem_mb=8000,
        gpu=1,
    params:
        tessera=TESSERA,
    conda:
        "../envs/train.yaml"
    shell:
        "{params.tessera} --energy-out {output.energy:q} calibrate --out {output.result:q} > {log:q} 2>&1"
