from expertalign.analysis import steps
from expertalign.steps import setup_logging

setup_logging(snakemake.log[0])
steps.cost_table(
    snakemake.input.benchmarks, snakemake.params.shard_sizes, snakemake.output.table
)
