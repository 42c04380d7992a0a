"""Updates: the release catalogue (what is available), what each site lacks, waves, and the verdict of an update.

`catalog` is the catalogue model and its sources (a block's entries, a file, wordpress.org's API) behind one
interface; `plan` is pure: outdated components, waves from `1,25%,100%`, and whether an update broke a site.
"""
