from expertalign.jobs import runtime, sentences

runtime.start_job(snakemake.log[0], threads=snakemake.threads)
sentences.move_out_of_batch(
    snakemake.input.batch, snakemake.wildcards.concept, snakemake.output.sentences
)
