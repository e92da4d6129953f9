from expertalign.jobs import runtime, sentences

runtime.start_job(snakemake.log[0], threads=snakemake.threads)
sentences.diversity_table(snakemake.input.sentences, snakemake.output.table)
