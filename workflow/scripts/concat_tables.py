from expertalign.analysis import steps
from expertalign.steps import setup_logging

setup_logging(snakemake.log[0])
steps.concat_tables(snakemake.input.tables, snakemake.output.parquet, snakemake.output.csv)
