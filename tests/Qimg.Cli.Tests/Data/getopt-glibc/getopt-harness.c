#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
/* usage: g OPTSTRING LONGSPEC -- argv0 args...
   LONGSPEC: name:hasarg:val,name:hasarg:val */
int main(int argc, char **argv) {
    const char *optstring = argv[1];
    char *spec = strdup(argv[2]);
    struct option lo[32]; int n = 0;
    for (char *tok = strtok(spec, ","); tok; tok = strtok(NULL, ",")) {
        char *a = strchr(tok, ':'); *a = 0; char *b = strchr(a+1, ':'); *b = 0;
        lo[n].name = tok; lo[n].has_arg = atoi(a+1); lo[n].flag = NULL; lo[n].val = atoi(b+1); n++;
    }
    memset(&lo[n], 0, sizeof lo[n]);
    int ac = argc - 3; char **av = argv + 3;
    int c;
    opterr = 0;
    while ((c = getopt_long(ac, av, optstring, lo, NULL)) != -1) {
        printf("%d|%d|%s|%s;", c, optind, optarg ? optarg : "(null)", av[optind-1]);
    }
    printf("END|%d;", optind);
    for (int i = 0; i < ac; i++) printf("%s ", av[i]);
    printf("\n");
    return 0;
}
