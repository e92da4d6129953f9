"""The jobs layer: what each Snakemake rule runs, one module per rule file.

    >>> from expertalign.jobs import runtime, experts
    >>> runtime.start_job(snakemake.log[0], threads=snakemake.threads)
    >>> experts.experts(sentence_files, bank_file, output_path, model=spec, ...)

``workflow/scripts/*.py`` unpack ``snakemake`` and call one function here; these functions read
their inputs, call the science in the rest of the package and write their outputs atomically, so
a killed job leaves nothing that looks finished. The modules mirror ``workflow/rules/``:
``jobs.sentences`` (sentences.smk), ``jobs.experts`` (experts.smk), ``jobs.alignment``
(alignment.smk), ``jobs.analysis`` (analysis.smk), ``jobs.pilot`` (pilot.smk); ``jobs.runtime``
prepares any job's process (log, offline hub, threads, the GPU check). Paths come from
:mod:`expertalign.paths`, the one module that knows the results layout.
See docs/CONTRACTS.md.
"""
