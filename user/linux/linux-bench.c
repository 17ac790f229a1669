/* The peer benchmark: Herald's bench operations as a static Linux program, run unchanged on
 * Herald (/bin/linux-bench) and on Linux 6.1 in the same QEMU by `cargo xtask bench --vs-linux`.
 * Kept as the project's shared anchor gave it (the numbers it prints are comparable only if
 * both sides run this exact source). */
// The peer: the operations of Herald's bench, as a static Linux program. Under
// qemu -icount shift=0 rdtsc advances once per guest instruction, so each figure is exact.
// Output lines start with the kernel's name (uname sysname, lower-cased) so the same binary
// can run on Linux and on Herald and be told apart.
#include <stdio.h>
#include <stdint.h>
#include <unistd.h>
#include <spawn.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <sys/reboot.h>
#include <sys/utsname.h>
#include <ctype.h>
extern char **environ;
static inline uint64_t rdtsc(void){ uint32_t lo,hi; __asm__ volatile("rdtsc":"=a"(lo),"=d"(hi)); return ((uint64_t)hi<<32)|lo; }
static inline long raw_getpid(void){ long r; __asm__ volatile("syscall":"=a"(r):"a"(39):"rcx","r11","memory"); return r; }
int main(int argc, char **argv){
  if (argc > 1) return 7;                     /* the tiny program spawned below */
  static struct utsname u; static char k[65];
  uname(&u); for (int i = 0; u.sysname[i] && i < 64; i++) k[i] = tolower((unsigned char)u.sysname[i]);
  const int N=20000;
  uint64_t t0,t1;
  t0=rdtsc(); for(int i=0;i<N;i++) raw_getpid(); t1=rdtsc();
  printf("%s: null syscall (getpid)                %10.2f\n",k,(double)(t1-t0)/N);
  t0=rdtsc(); for(int i=0;i<N;i++){ void*p=mmap(0,4096,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0); munmap(p,4096);} t1=rdtsc();
  printf("%s: mmap + munmap 4 KiB                  %10.2f\n",k,(double)(t1-t0)/N);
  char *big=mmap(0,(size_t)N*4096,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0);
  t0=rdtsc(); for(int i=0;i<N;i++) big[(size_t)i*4096]=1; t1=rdtsc();
  printf("%s: demand-zero page fault (touch)       %10.2f\n",k,(double)(t1-t0)/N);
  munmap(big,(size_t)N*4096);                 /* fork below must not copy these page tables */
  pid_t c=fork();
  if(c==0){ for(int i=0;i<N;i++) sched_yield(); _exit(0); }
  t0=rdtsc(); for(int i=0;i<N;i++) sched_yield(); t1=rdtsc();
  waitpid(c,0,0);
  printf("%s: context switch (yield ping-pong) / 2 %10.2f\n",k,(double)(t1-t0)/N/2);
  const int M=200;
  char *args[]={argv[0],"x",0};
  t0=rdtsc(); for(int i=0;i<M;i++){ pid_t p; posix_spawn(&p,"/init",0,0,args,environ); int st; waitpid(p,&st,0);} t1=rdtsc();
  printf("%s: spawn + run + exit + wait            %10.2f\n",k,(double)(t1-t0)/M);
  t0=rdtsc(); for(int i=0;i<M;i++){ pid_t p=fork(); if(p==0) _exit(7); int st; waitpid(p,&st,0);} t1=rdtsc();
  printf("%s: fork + exit + wait                   %10.2f\n",k,(double)(t1-t0)/M);
  fflush(stdout);
  if (getpid()==1) reboot(RB_POWER_OFF);
  return 0;
}
