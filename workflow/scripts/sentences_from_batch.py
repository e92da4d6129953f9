from expertalign.sentence_jobs import move_out_of_batch
from expertalign.steps import setup_logging

setup_logging(snakemake.log[0])
move_out_of_batch(
    snakemake.input.batch, snakemake.wildcards.concept, snakemake.output.sentences
)
