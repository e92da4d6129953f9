from expertalign.sentence_jobs import diversity_table
from expertalign.steps import setup_logging

setup_logging(snakemake.log[0])
diversity_table(snakemake.input.sentences, snakemake.output.table)
