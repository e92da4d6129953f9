from expertalign.jobs import runtime, sentences

runtime.start_job(snakemake.log[0], threads=snakemake.threads, offline=False)
sentences.prefetch(snakemake.params.source, snakemake.wildcards.revision, snakemake.output.marker)
